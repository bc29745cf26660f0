"""The Azure Functions app: the one `FunctionApp`, with every blueprint registered on it.

The Python worker checks that `function_app.py` exists in the app root, then imports the module *named*
`function_app`; this package shadows that file, so the worker indexes the `app` defined here (see
`tests/test_function_app.py`, which imports it the way the worker does). Keep exactly one FunctionApp-like object
at the top level of this module: the worker refuses two, even two names for the same app.
"""

from __future__ import annotations

import azure.functions as func

from abm.logs import quiet_libraries
from function_app.health import bp as _health
from function_app.insights import bp as _insights
from function_app.interactions import bp as _interactions
from function_app.replay import bp as _replay
from function_app.sync import bp as _sync
from function_app.webhook import bp as _webhook

quiet_libraries()  # the host owns the handlers; the libraries' records may quote values (`abm.logs`)
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(_health)
app.register_functions(_webhook)
app.register_functions(_sync)
app.register_functions(_replay)
app.register_functions(_interactions)
app.register_functions(_insights)
