-- Sprint 02: Dream (manifest: tools/sprint_02_dream.json).
CALL tool_access.install_tool({{tool_manifest}});
