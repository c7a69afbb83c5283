"""The web panel (``lowvram-r1 ui`` or ``python app.py``): launch runs, watch them live, compare, try the result.

A thin shell over run directories: it starts ``lowvram-r1 train`` processes and reads what they write. The panel
process never imports torch, transformers or trl (``tryit`` runs inference in a child process). Needs the ``ui``
extra (gradio).
"""
