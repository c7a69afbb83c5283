"""The old import path of :mod:`lowvram_r1.train.evaluate` (held-out accuracy, pass@k, a run's answer), kept so a
notebook or script written against it keeps working: ``from lowvram_r1.evaluate import answer``.
"""

from lowvram_r1.train.evaluate import (  # noqa: F401  (re-exported: the old path)
    Generator,
    answer,
    check_retrieval_switch,
    evaluate,
    generate,
    load_for_inference,
    majority_accuracy,
    monitor_means,
    pass_at_k,
    score,
    task_generator,
)
