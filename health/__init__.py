"""An agent's health as it is now, for agents that read it to heal themselves.

``digest``: what the converter workers hand back of each batch they stored (the batch's run
partials and its tool and model calls); ``board``: the in-memory rolling aggregate the API
process keeps of them; ``context``: the slower facts read from storage (the baseline, judge
scores, feedback, open alerts, budgets); ``advice``: the rules that turn all of it into advice.
"""
