"""The read API and the viewer on the demo's data (``bash scripts/demo.sh --serve``).

Called by ``demo.py`` while its local Convex server still runs: serves the API against that server with a random
HS256 secret, prints viewer links carrying a one-hour development token, and runs until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets


def serve_viewer(server, tenant: str, workspace: str, records, port: int = 8000) -> None:
    import uvicorn

    from aiida_structstore.api import ApiSettings, create_app, mint_token

    os.environ.update(STRUCTURE_STORE_BACKEND='convex', CONVEX_URL=server.url, CONVEX_DEPLOY_KEY=server.deploy_key)
    settings = ApiSettings(jwt_secret=os.environ.get('STRUCTURE_API_JWT_SECRET') or secrets.token_urlsafe(48))
    token = mint_token(settings, tenant, [workspace], seconds=3600, subject='demo')
    base = f'http://127.0.0.1:{port}/viewer/'
    print(f'\nThe read API and the viewer on {tenant}/{workspace} (a development token valid for one hour):')
    print(f'  the workspace:  {base}?workspace={workspace}#token={token}')
    for record in records:
        print(f'  {record.source.filename:<18} {base}?workspace={workspace}&id={record.key.structure_id}#token={token}')
    print(f'  the API:        curl -H "Authorization: Bearer {token}" http://127.0.0.1:{port}/api/structures')
    print('Ctrl-C stops the API and the local Convex server.\n', flush=True)
    uvicorn.run(create_app(settings), host='127.0.0.1', port=port, log_level='warning')
