"""Placeholder: replaced by the compatibility layer."""


def apply():
    pass
