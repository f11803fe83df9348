"""Parsers: structure file text → AiiDA nodes (CIF, Quantum ESPRESSO pw.x input)."""
