"""Gradio demo: ``python app.py`` (host and port: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
Hugging Face Spaces run this file as is and use the module-level ``demo``."""
from app.builder import build_app

demo = build_app()
demo.queue(default_concurrency_limit=2)

if __name__ == "__main__":
    demo.launch()
