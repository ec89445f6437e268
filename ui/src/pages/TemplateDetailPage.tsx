/** One template: its settings editor and everything a session gets from it. */
import { useState } from "react";
import { useNavigate, useParams } from "react-router";
import { useTemplate } from "../api/queries";
import { CopyId, PageHeader, Tag, Time, useTitle } from "../components/bits";
import { QueryState } from "../components/feedback";
import { CreateSessionDialog } from "./SessionsPage";
import { SettingsEditor } from "./template/SettingsEditor";
import { CapabilitiesCard, LibrariesCard, ModulesCard, StartupFilesCard } from "./template/sections";
import { DeleteTemplateDialog } from "./TemplatesPage";

export function TemplateDetailPage() {
  const { id = "" } = useParams();
  const template = useTemplate(id);
  useTitle(template.data ? `Template ${template.data.name}` : "Template");
  const navigate = useNavigate();
  const [deleting, setDeleting] = useState(false);
  const [starting, setStarting] = useState(false);
  return (
    <div className="page" data-testid="template-detail-page">
      <QueryState query={template} label="Loading the template…">
        {(detail) => (
          <>
            <PageHeader
              crumbs={[{ to: "/templates", label: "Templates" }]}
              title={detail.name}
              subtitle={
                <span className="meta-row">
                  <Tag tone="info">{detail.engine}</Tag>
                  <CopyId id={detail.id} full />
                  <span>
                    created <Time iso={detail.created_at} />
                  </span>
                  <span>
                    updated <Time iso={detail.updated_at} />
                  </span>
                </span>
              }
              actions={
                <>
                  <button type="button" className="button danger-quiet" onClick={() => setDeleting(true)}>
                    Delete
                  </button>
                  <button type="button" className="button primary" onClick={() => setStarting(true)}>
                    Start session
                  </button>
                </>
              }
            />
            <div className="detail-grid">
              <div className="detail-col">
                <SettingsEditor key={detail.id} templateId={detail.id} settings={detail.settings} />
                <StartupFilesCard templateId={detail.id} files={detail.startup_files} />
                <CapabilitiesCard templateId={detail.id} capabilities={detail.capabilities} />
              </div>
              <div className="detail-col">
                <LibrariesCard templateId={detail.id} configured={detail.libraries} />
                <ModulesCard templateId={detail.id} enabled={detail.exposed_modules} />
              </div>
            </div>
            <DeleteTemplateDialog
              template={deleting ? detail : null}
              onClose={() => setDeleting(false)}
              onDeleted={() => void navigate("/templates")}
            />
            <CreateSessionDialog open={starting} onClose={() => setStarting(false)} templateId={detail.id} />
          </>
        )}
      </QueryState>
    </div>
  );
}
