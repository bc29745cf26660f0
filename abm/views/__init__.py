"""The read side: insights over the mirror's event stream, their parameters, the HTML report, lead scores."""
