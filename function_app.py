"""Entry file the Azure Functions Python worker looks for (it checks this file exists, then imports the module
named `function_app`, which resolves to the `function_app/` package beside it). Do not add code here."""
