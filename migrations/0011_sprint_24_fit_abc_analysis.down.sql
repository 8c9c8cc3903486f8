-- Removes the tool fit_abc_analysis with its entries, history, grants and progress.
CALL tool_access.uninstall_tool('fit_abc_analysis');
