"""``crossvit serve``: a CrossViT behind HTTP (FastAPI + uvicorn) with dynamic batching and a web page.

    crossvit serve --checkpoint runs/x/release --port 8000
    curl --data-binary @cat.jpg http://127.0.0.1:8000/predict?top_k=3     # [{"label": "cat", "score": 0.91}, ...]

Modules: :mod:`.batcher` (concurrent requests -> one forward pass, off the event loop), :mod:`.uploads` (request
bodies -> decoded images, every bad input a 4xx naming the problem), :mod:`.app` (the endpoints), :mod:`.cli`.
"""
