-- Removes the tool digital_heart with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('digital_heart');
