-- Removes the tool know_thyself with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('know_thyself');
