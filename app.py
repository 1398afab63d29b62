"""Gradio demo: ``python app.py`` (host and port: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT).
Hugging Face Spaces run this file as is and use the module-level ``demo``; the README's "Deploy as a
Hugging Face Space" section lists the hardware and environment variables."""
from app.gpu import prepare

prepare()  # on ZeroGPU, `spaces` must come before torch initializes CUDA

import threading  # noqa: E402

from app.builder import MAX_FILE_SIZE, build_app  # noqa: E402
from app.weights import start_preload  # noqa: E402
from uniformer.explain.cam import preload_cam_library  # noqa: E402

demo = build_app()
demo.queue(default_concurrency_limit=2)

if __name__ == "__main__":
    start_preload()  # $UNIFORMER_PRELOAD: fetch those weights in the background
    # pytorch-grad-cam imports scikit-learn and OpenCV (~2 s): import it now, not on the first CAM click
    threading.Thread(target=preload_cam_library, name="preload-grad-cam", daemon=True).start()
    demo.launch(max_file_size=MAX_FILE_SIZE)  # uploads are bounded (media and checkpoints)
