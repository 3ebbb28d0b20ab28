"""The HTTP side: chat-ops commands and the report archive, one application (app.py).

    http.py      Request, Response, HttpError, the security headers
    app.py       routes, methods, body cap, dispatch; WSGI
    auth.py      bearer token and signed expiring links (also for links in digests)
    source.py    the read-only store, the one seam to the history
    commands.py  status / problems / history / help, and fitting answers into a chat
    slack.py  dingtalk.py  feishu.py    each chat's signature, dialect and answer
    pages.py  charts.py                 the archive's pages and their SVG charts
    live.py      `status <job> live`: one job read fresh from DRS, never stored
    server.py    `drs-report serve` (stdlib WSGI, a thread per request)
    apig.py      FunctionGraph's APIG trigger: event in, answer out

Importing this package loads nothing else: the function's cold start stays small.
"""
