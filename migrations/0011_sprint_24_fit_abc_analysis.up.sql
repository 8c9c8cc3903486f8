-- Sprint 24: FIT & ABC Analysis (manifest: tools/sprint_24_fit_abc_analysis.json).
CALL tool_access.install_tool({{tool_manifest}});

-- One row per assessed team member: fit scores from 1 to 10 and an A/B/C rating.
CREATE TABLE sprint_24_fit_abc_analysis.team_assessments (
    id               uuid NOT NULL DEFAULT app.uuid_v7(),
    organization_id  uuid NOT NULL,
    tool_data_id     uuid NOT NULL,
    team_member_name text NOT NULL CHECK (length(btrim(team_member_name)) BETWEEN 1 AND 255),
    role             text CHECK (length(role) <= 255),
    fit_energy       int CHECK (fit_energy BETWEEN 1 AND 10),
    fit_skill        int CHECK (fit_skill BETWEEN 1 AND 10),
    fit_values       int CHECK (fit_values BETWEEN 1 AND 10),
    fit_impact       int CHECK (fit_impact BETWEEN 1 AND 10),
    abc_rating       char(1) CHECK (abc_rating IN ('A', 'B', 'C')),
    notes            text CHECK (length(notes) <= 5000),
    action_items     jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(action_items) = 'array'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, tool_data_id)
        REFERENCES sprint_24_fit_abc_analysis.tool_data (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX ON sprint_24_fit_abc_analysis.team_assessments (organization_id, tool_data_id);
CALL tool_access.protect_entry_table('sprint_24_fit_abc_analysis.team_assessments', 'fit_abc_analysis');
GRANT INSERT (organization_id, tool_data_id, team_member_name, role, fit_energy, fit_skill, fit_values, fit_impact, abc_rating, notes, action_items),
      UPDATE (team_member_name, role, fit_energy, fit_skill, fit_values, fit_impact, abc_rating, notes, action_items)
    ON sprint_24_fit_abc_analysis.team_assessments TO tenantry_runtime;
