"""The read API and the viewer on the demo's data (``bash scripts/demo.sh --serve``).

Called by ``demo.py`` while its local Convex server still runs: serves the API against that server on the socket
``demo.py`` took at its start (so the port was known to be free before the demo ran), with a random HS256 secret,
prints viewer links carrying a one-hour development token and the command that mints more, and runs until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket


def serve_viewer(server, tenant: str, workspace: str, records, listening: socket.socket) -> None:
    import uvicorn

    from aiida_structstore.api import ApiSettings, create_app, mint_token

    os.environ.update(STRUCTURE_STORE_BACKEND='convex', CONVEX_URL=server.url, CONVEX_DEPLOY_KEY=server.deploy_key)
    own_secret = os.environ.get('STRUCTURE_API_JWT_SECRET')
    secret = own_secret or secrets.token_urlsafe(48)
    settings = ApiSettings(jwt_secret=secret)
    token = mint_token(settings, tenant, [workspace], seconds=3600, subject='demo')
    port = listening.getsockname()[1]
    base = f'http://127.0.0.1:{port}/viewer/'
    print(f'\nThe read API and the viewer on {tenant}/{workspace} (a development token valid for one hour):')
    print(f'  the workspace:  {base}?workspace={workspace}#token={token}')
    for record in records:
        print(f'  {record.source.filename:<18} {base}?workspace={workspace}&id={record.key.structure_id}#token={token}')
    print(f'  the API:        curl -H "Authorization: Bearer {token}" http://127.0.0.1:{port}/api/structures')
    mint = f'.venv/bin/structstore-dev-token -t {tenant} -w {workspace} --minutes 60'
    if own_secret:
        print(f'More tokens (signed with your STRUCTURE_API_JWT_SECRET, which this server uses):\n  {mint}')
    else:
        print(
            'More tokens, from another terminal: the secret below is a throwaway made for this demo server only (on\n'
            '127.0.0.1, over the local test double of Convex); it dies with it, and no other server accepts it.\n'
            f'  STRUCTURE_API_JWT_SECRET={shlex.quote(secret)} {mint}'
        )
    print('Ctrl-C stops the API and the local Convex server.\n', flush=True)
    config = uvicorn.Config(create_app(settings), log_level='warning')
    try:
        uvicorn.Server(config).run(sockets=[listening])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down; uvicorn.run() ends quietly the same way
        pass
