"""Workflows of aiida-structstore: ``structstore.project`` (:class:`.project.ProjectStructuresWorkChain`)."""
