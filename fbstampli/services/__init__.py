"""One function per command, grouped by area; the CLI calls these and shows what they return.

Services open what they need through `runtime`, call the `sync/` orchestrators
and return data (`RunReport` or plain dicts). They never print.
"""
