"""Reusable parameters of the ``verdi data structstore`` commands."""
