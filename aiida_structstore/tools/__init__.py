"""File readers: structure file text → unstored AiiDA nodes (CIF, Quantum ESPRESSO pw.x input).

These are not ``aiida.parsers`` plugins (those parse the outputs of calculations); as in aiida-quantumespresso, the
readers of input files live in ``tools/``. The import calcfunctions (:mod:`aiida_structstore.calculations.functions`)
call them and store what they return.
"""
