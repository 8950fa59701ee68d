"""Cloud inventory and metrics: the interface (``inventory``) and its AWS implementation (``aws``)."""
