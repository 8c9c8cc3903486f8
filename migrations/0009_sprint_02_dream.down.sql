-- Removes the tool dream with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('dream');
