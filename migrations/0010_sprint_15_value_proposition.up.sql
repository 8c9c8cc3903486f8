-- Sprint 15: Value Proposition (manifest: tools/sprint_15_value_proposition.json).
CALL tool_access.install_tool({{tool_manifest}});

-- Hypotheses drawn from the canvas, each to be tested.
CREATE TABLE sprint_15_value_proposition.hypotheses (
    id              uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id uuid NOT NULL,
    tool_data_id    uuid NOT NULL,
    hypothesis_text text NOT NULL CHECK (length(btrim(hypothesis_text)) BETWEEN 1 AND 2000),
    category        text CHECK (category IN ('gain', 'pain', 'jobs')),
    priority        int CHECK (priority BETWEEN 1 AND 5),
    tested          boolean NOT NULL DEFAULT false,
    test_results    jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, tool_data_id)
        REFERENCES sprint_15_value_proposition.tool_data (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX ON sprint_15_value_proposition.hypotheses (organization_id, tool_data_id);
CALL tool_access.protect_entry_table('sprint_15_value_proposition.hypotheses', 'value_proposition');
GRANT INSERT (organization_id, tool_data_id, hypothesis_text, category, priority, tested, test_results),
      UPDATE (hypothesis_text, category, priority, tested, test_results)
    ON sprint_15_value_proposition.hypotheses TO tenantry_runtime;
