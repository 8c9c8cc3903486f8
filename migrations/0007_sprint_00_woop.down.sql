-- Removes the tool woop with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('woop');
