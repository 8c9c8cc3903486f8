-- Sprint 00: WOOP (manifest: tools/sprint_00_woop.json).
CALL tool_access.install_tool({{tool_manifest}});
