"""The Gradio demo of ``uniformer`` (``python app.py``; a Hugging Face Space runs the same file).

Modules: :mod:`app.builder` assembles the Blocks, one ``*_tab`` module per tab wires components,
:mod:`app.handlers` holds the event functions, :mod:`app.models` the weights policy and the
byte-bounded model cache (on :mod:`app.cache`, the app's one cache mechanism), :mod:`app.weights`
the Weights panel (official download, uploaded checkpoints per session), :mod:`app.gpu` the ZeroGPU
decorator, :mod:`app.components` a Gradio component adapted to the app, :mod:`app.examples` the
example photos.
"""
