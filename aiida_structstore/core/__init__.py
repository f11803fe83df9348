"""The records of the store and the rules they keep, shared by the AiiDA side, the store and the application.

* :mod:`.structures`: structure keys, contents, records, pages, the content hash;
* :mod:`.executions`: execution (process) keys, contents, records;
* :mod:`.values`: ids, text and canonical JSON rules every record kind shares;
* :mod:`.chunking`: raw text split into chunks and joined back with verification;
* :mod:`.limits`: the limits of a Convex deployment and of the project's Convex functions;
* :mod:`.exceptions`: the one error hierarchy.

This package imports no AiiDA module and no store backend.
"""
