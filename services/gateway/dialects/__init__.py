"""Public REST dialects. Each is one module with a FastAPI `router` (its routes of class
`body.route_class(NAME)`) that translates its contract's requests into a `JobSpec` (services/common/record.py) and its responses
out of job records, and an `error_body(err)` that writes an error in the contract's shape. Adding a
dialect is a new module here plus one entry in `registry.DIALECTS`.

    pixelcut         {"error": message, "error_code": code}
    studio-background {"status": "error", "error": {"code", "message"}}
    removebgvideo    {"success": false, "error": {"code", "message"}}

Routes of no dialect (health, usage, internal views) use the Pixelcut shape, the house default.
"""
