"""The run viewer behind ``agent-run-id serve`` and ``agent-run-id runs report --html``.

Private: the command is its only user. ``_data`` shapes what the registry and the logs say
into what a page shows (standard library only); ``_render`` turns it into HTML with Jinja2;
``_app`` serves it with Starlette. The templates and the one stylesheet and script are
package data, next to the modules.
"""
