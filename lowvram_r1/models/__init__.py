"""The model and the machine, below every part that loads, plans or generates: the hardware description
(``hardware``), where a model's weights come from (``source``), its shapes (``shapes``), the built-in tiny model
(``tiny``, ``tiny_traces``), the CPU stand-in for TRL's fused log-prob kernel (``cpu_logprob``) and a prompt's text
(``prompts``). ``backends``, ``rollout`` and ``memory`` all read them; nothing here imports those."""
