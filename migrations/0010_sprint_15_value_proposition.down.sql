-- Removes the tool value_proposition with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('value_proposition');
