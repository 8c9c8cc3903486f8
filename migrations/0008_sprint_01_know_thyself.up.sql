-- Sprint 01: Know Thyself (manifest: tools/sprint_01_know_thyself.json).
CALL tool_access.install_tool({{tool_manifest}});
