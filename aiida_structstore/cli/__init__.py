"""``verdi data structstore``: import structure files, project structures into the store, read them back.

One module per concern (:mod:`.imports`, :mod:`.project`, :mod:`.read`, :mod:`.manage`, :mod:`.executions`,
:mod:`.uploads`);
importing them here registers their commands on :data:`cmd_structstore`. Reusable options live in
:mod:`.params.options`.

Exit codes: 0 success; 1 an error (printed through AiiDA's ``echo_critical``) or, for ``import``, ``sync`` and
``verify``, at least one item failed; 2 a usage error (click).
"""

import click
from aiida.cmdline.groups import VerdiCommandGroup


@click.group('structstore', cls=VerdiCommandGroup)
def cmd_structstore():
    """Project structures into the application's structure store (Convex) and read them back.

    The store is chosen by STRUCTURE_STORE_BACKEND (convex or memory); convex needs CONVEX_URL and CONVEX_DEPLOY_KEY.
    """


from . import executions, imports, manage, project, read, uploads  # noqa: E402, F401 - registers the commands
