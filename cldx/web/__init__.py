"""The web app: the JSON API under /api/v1 and the server-rendered pages, in one FastAPI app.

May import any part of cldx. Every script and stylesheet a page uses is served from `static/`.
"""
