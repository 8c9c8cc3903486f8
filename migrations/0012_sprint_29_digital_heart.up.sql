-- Sprint 29: Digital Heart (manifest: tools/sprint_29_digital_heart.json).
CALL tool_access.install_tool({{tool_manifest}});
