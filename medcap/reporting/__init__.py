"""Paper 003's path from a findings classifier to a report.

    description.py     the classifier's outputs for one study as a typed, graded record
    sentence_bank.py   sentences learned from the train reports with medcap's labeler
    writers.py         the writer interface, writers by name, the template writer
    prompts.py         what an LLM is sent: instruction, ICIL examples, chain of thought
    cache.py           LLM replies on disk, keyed by writer, model, prompt and settings
    llm_writers.py     the openai (chat-completions endpoint) and keras_hub (local causal LM) writers
    fine_tune.py       LoRA fine-tuning of the keras_hub writer's model on the train split
"""
