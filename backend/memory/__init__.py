"""Deliberation memory: a context-aware semantic cache of finished results (DESIGN decision 15).

A question asked again in the same context is answered from a result a person already trusted; a question in another
context, or one that differs in a number, a date, a negation or a named thing, is never a hit.
"""
