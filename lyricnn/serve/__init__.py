"""``lyricnn serve``: the trained models behind the OpenAI-style completions API and the
studio page.

    models.py     the loaded checkpoints (decoder, originality index, card)
    scheduler.py  the one thread that runs MXNet, batching concurrent requests
    api.py        the HTTP routes (Starlette): /health, /v1/models, /v1/completions, /
    page.py       the page's files (static/)
    server.py     start it: load the models in the background, run uvicorn
"""
