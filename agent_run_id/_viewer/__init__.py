"""The run viewer behind ``agent-run-id serve`` and ``agent-run-id runs report --html``.

Private: the command is its only user (extra ``viewer``). ``_data`` shapes what the registry
says into what a page shows, through ``RunRegistry`` alone; ``_logs`` finds a run tree's log
lines with the command's scan (standard library only, both); ``_render`` turns them into HTML
with Jinja2, autoescaped; ``_app`` serves it with Starlette. The templates and the one
stylesheet and script are package data, next to the modules.
"""
