"""Multi-turn environments for tasks that call tools: a procedural world of invented facts, a BM25 retriever over
a corpus file (cached on disk), and the search environment that answers ``<search>`` turns.

    from lowvram_r1.envs.search import SearchSettings, SearchEnvironment
    env = SearchEnvironment(SearchSettings.from_options({"corpus": "wiki.jsonl", "top_k": 3}))
    env.observe("who founded Quillmark")     # '\\n<information>Doc 1 (Title: ...) ...</information>\\n'

Nothing here imports torch: tasks and rewards use it; the rollout (``lowvram_r1.rollout.multiturn``) drives it.
"""
