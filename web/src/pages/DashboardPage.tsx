import { useCallback, useEffect, useRef, useState, type ChangeEvent, type FormEvent } from "react";
import { Link, useNavigate } from "../modules/router/router";
import { ApiError, errorMessage } from "../api/errors";
import { createSessionFromZip, listTemplates } from "../api/ide";
import * as sessionsApi from "../api/sessions";
import type { Language, Session, Template } from "../api/types";
import { ApiTokens } from "../components/ApiTokens";
import { Brand } from "../components/Brand";
import * as historyApi from "../api/history";
import { DeletedWorkspaces } from "../components/DeletedWorkspaces";
import { ConfirmDialog, PromptDialog } from "../components/Dialog";
import { EditIcon, PlusIcon, TrashIcon, UploadIcon } from "../components/Icons";
import { FullPageError, Spinner } from "../components/PageStates";
import { SharedWithMe } from "../components/SharedWithMe";
import { ThemeToggle } from "../components/ThemeToggle";
import { useAuth } from "../modules/auth/AuthContext";
import { formatRelativeTime } from "../modules/format/relativeTime";
import { takeDashboardNotice } from "../modules/layout/dashboardNotice";

type ListState = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; sessions: Session[] };

const FALLBACK_LANGUAGES: Language[] = [{ id: "python", name: "Python", version: "", extensions: [".py"], compiled: false, available: true }];

function validateSessionName(v: string): string | null {
  if (!v.trim()) return "A name is required.";
  if (v.trim().length > 100) return "Keep the name under 100 characters.";
  return null;
}

export function DashboardPage() {
  const { state: auth, logout, deleteAccount } = useAuth();
  const navigate = useNavigate();
  const [list, setList] = useState<ListState>({ status: "loading" });
  const [notice, setNotice] = useState<string | null>(takeDashboardNotice);
  const [languages, setLanguages] = useState<Language[]>(FALLBACK_LANGUAGES);
  const [name, setName] = useState("");
  const [language, setLanguage] = useState("python");
  const [templates, setTemplates] = useState<Template[]>([]);
  // "t:<key>" = a starter template, "l:<id>" = a language without one
  const [starter, setStarter] = useState("t:python");
  // A language picked before the templates arrived: their starter replaces it (not python's).
  const pickedLanguage = useRef<string | null>(null);
  const zipInput = useRef<HTMLInputElement>(null);
  const [creating, setCreating] = useState(false);
  const [createError, setCreateError] = useState<string | null>(null);
  const [renaming, setRenaming] = useState<Session | null>(null);
  const [deleting, setDeleting] = useState<Session | null>(null);
  const [deletingAccount, setDeletingAccount] = useState(false);
  const [trashKey, setTrashKey] = useState(0);
  const onFork = async (s: Session) => {
    try {
      const fork = await historyApi.forkSession(s.uuid);
      navigate(`/s/${fork.uuid}`);
    } catch (err) {
      setList({ status: "error", message: errorMessage(err) });
    }
  };
  const [dialogBusy, setDialogBusy] = useState(false);
  const [dialogError, setDialogError] = useState<string | null>(null);

  const load = useCallback(() => {
    setList({ status: "loading" });
    sessionsApi.listSessions().then(
      (sessions) => setList({ status: "ready", sessions }),
      (err: unknown) => setList({ status: "error", message: errorMessage(err) }),
    );
  }, []);

  useEffect(() => {
    load();
    listTemplates().then(
      (list) => {
        setTemplates(list);
        const lang = pickedLanguage.current;
        const match = lang === null ? undefined : list.find((t) => t.language === lang && t.is_default) ?? list.find((t) => t.language === lang);
        if (match) setStarter(`t:${match.key}`);
      },
      () => {
        /* without templates the language list is used */
      },
    );
    sessionsApi.listLanguages().then(
      (langs) => langs.length > 0 && setLanguages(langs),
      () => {
        /* the language list is optional: Python is always there */
      },
    );
  }, [load]);

  const onCreate = async (e: FormEvent) => {
    e.preventDefault();
    const problem = validateSessionName(name);
    if (problem) {
      setCreateError(problem);
      return;
    }
    setCreating(true);
    setCreateError(null);
    try {
      const s =
        templates.length > 0
          ? await sessionsApi.createSession({ name: name.trim(), template: starter.slice(2) })
          : await sessionsApi.createSession({ name: name.trim(), language });
      navigate(`/s/${s.uuid}`);
    } catch (err) {
      setCreateError(errorMessage(err));
      setCreating(false);
    }
  };

  const onZip = async (e: ChangeEvent<HTMLInputElement>) => {
    const zip = e.target.files?.[0];
    e.target.value = "";
    if (!zip) return;
    setCreating(true);
    setCreateError(null);
    try {
      const s = await createSessionFromZip(name.trim() || zip.name.replace(/\.zip$/i, "") || "Imported", zip, () => undefined);
      navigate(`/s/${s.uuid}`);
    } catch (err) {
      setCreateError(`Could not import ${zip.name}: ${errorMessage(err)}`);
      setCreating(false);
    }
  };

  const closeDialogs = () => {
    setRenaming(null);
    setDeleting(null);
    setDeletingAccount(false);
    setDialogBusy(false);
    setDialogError(null);
  };

  const onRename = async (newName: string) => {
    if (!renaming) return;
    setDialogBusy(true);
    setDialogError(null);
    try {
      const updated = await sessionsApi.updateSession(renaming.uuid, { name: newName });
      setList((l) => (l.status === "ready" ? { ...l, sessions: l.sessions.map((s) => (s.uuid === updated.uuid ? updated : s)) } : l));
      closeDialogs();
    } catch (err) {
      setDialogError(errorMessage(err));
      setDialogBusy(false);
    }
  };

  const onDelete = async () => {
    if (!deleting) return;
    setDialogBusy(true);
    setDialogError(null);
    try {
      await sessionsApi.deleteSession(deleting.uuid);
      const gone = deleting.uuid;
      setList((l) => (l.status === "ready" ? { ...l, sessions: l.sessions.filter((s) => s.uuid !== gone) } : l));
      setTrashKey((k) => k + 1);
      closeDialogs();
    } catch (err) {
      setDialogError(errorMessage(err));
      setDialogBusy(false);
    }
  };

  const onDeleteAccount = async (password: string) => {
    setDialogBusy(true);
    setDialogError(null);
    try {
      await deleteAccount(password);
    } catch (err) {
      setDialogError(err instanceof ApiError && err.code === "wrong_password" ? "That is not your password." : errorMessage(err));
      setDialogBusy(false);
    }
  };

  const languageName = (id: string) => languages.find((l) => l.id === id)?.name ?? id;

  return (
    <div style={{ minHeight: "100%" }}>
      <header className="topbar">
        <Brand />
        <div className="spacer" />
        {auth.status === "signed_in" && <span className="user">Signed in as {auth.user.username}</span>}
        <ThemeToggle />
        <button className="btn btn-sm" onClick={() => void logout()}>
          Sign out
        </button>
        <button className="btn btn-sm" onClick={() => setDeletingAccount(true)}>
          Delete account
        </button>
      </header>
      <main className="dashboard">
        {notice && (
          <div className="dashboard-notice" role="alert" data-testid="dashboard-notice">
            {notice}{" "}
            <button className="btn btn-sm" onClick={() => setNotice(null)}>
              Dismiss
            </button>
          </div>
        )}
        <div className="dashboard-head">
          <div>
            <h1>Your workspaces</h1>
            <p>Each workspace has its own files, terminals and sandbox.</p>
          </div>
          <form className="create-form" onSubmit={onCreate} aria-label="Create a workspace">
            <label htmlFor="new-session-name" className="sr-only">
              Workspace name
            </label>
            <input id="new-session-name" className="input" placeholder="New workspace name" value={name} onChange={(e) => setName(e.target.value)} maxLength={100} />
            <label htmlFor="new-session-language" className="sr-only">
              Language
            </label>
            <select
              id="new-session-language"
              className="input template-picker"
              value={templates.length > 0 ? starter : `l:${language}`}
              onChange={(e) => {
                if (e.target.value.startsWith("t:")) {
                  setStarter(e.target.value);
                } else {
                  pickedLanguage.current = e.target.value.slice(2);
                  setLanguage(e.target.value.slice(2));
                }
              }}
            >
              {templates.length > 0
                ? templates.map((t) => (
                    <option key={t.key} value={`t:${t.key}`} title={t.description}>
                      {t.name}
                    </option>
                  ))
                : languages.map((l) => (
                    <option key={l.id} value={`l:${l.id}`} title={l.version ? `${l.name} ${l.version}` : l.name}>
                      {l.name}
                    </option>
                  ))}
            </select>
            <button className="btn btn-primary" type="submit" disabled={creating}>
              <PlusIcon width={16} height={16} /> {creating ? "Creating…" : "Create"}
            </button>
            <button className="btn" type="button" disabled={creating} onClick={() => zipInput.current?.click()} title="Create a workspace from a zip archive">
              <UploadIcon width={16} height={16} /> Import zip
            </button>
            <input ref={zipInput} type="file" accept=".zip,application/zip" hidden data-testid="new-from-zip-input" onChange={(e) => void onZip(e)} />
          </form>
        </div>
        {createError && (
          <div className="alert alert-error" role="alert">
            {createError}
          </div>
        )}

        {list.status === "loading" && (
          <div className="page-center" style={{ minHeight: 200 }}>
            <Spinner label="Loading workspaces" />
          </div>
        )}
        {list.status === "error" && <FullPageError title="Could not load your workspaces" message={list.message} onRetry={load} />}
        {list.status === "ready" && list.sessions.length === 0 && (
          <div className="empty-state">
            <h2>No workspaces yet</h2>
            <div>Give your first workspace a name above and press Create.</div>
          </div>
        )}
        {list.status === "ready" && list.sessions.length > 0 && (
          <ul className="session-list" aria-label="Workspaces">
            {list.sessions.map((s) => (
              <li key={s.uuid} className="session-row">
                <div className="session-main">
                  <Link className="session-name" to={`/s/${s.uuid}`}>
                    {s.name}
                  </Link>
                  <div className="session-meta">
                    <span>{languageName(s.language)}</span>
                    <span title={s.last_accessed_at ?? undefined}>Opened {formatRelativeTime(s.last_accessed_at)}</span>
                    {s.forked_from_uuid && <span>Forked from {s.forked_from_name}</span>}
                    {(s.fork_count ?? 0) > 0 && <span>{s.fork_count} forks</span>}
                  </div>
                </div>
                <span className="badge" title="Sandbox status">
                  <span className={`dot dot-${s.sandbox_status}`} /> {s.sandbox_status}
                </span>
                <div className="session-actions">
                  <button className="icon-btn" aria-label={`Rename ${s.name}`} title="Rename" onClick={() => setRenaming(s)}>
                    <EditIcon />
                  </button>
                  <button className="icon-btn" aria-label={`Delete ${s.name}`} title="Delete" onClick={() => setDeleting(s)}>
                    <TrashIcon />
                  </button>
                  <button className="btn btn-sm" aria-label={`Fork ${s.name}`} title="Copy this workspace" onClick={() => void onFork(s)}>
                    Fork
                  </button>
                  <Link className="btn btn-sm" to={`/s/${s.uuid}`}>
                    Open
                  </Link>
                </div>
              </li>
            ))}
          </ul>
        )}
        <SharedWithMe />
        <DeletedWorkspaces refreshKey={trashKey} onRestored={() => load()} />
        <ApiTokens />
      </main>

      {renaming && (
        <PromptDialog
          title="Rename workspace"
          label="Name"
          initialValue={renaming.name}
          confirmLabel="Rename"
          busy={dialogBusy}
          error={dialogError}
          validate={validateSessionName}
          onConfirm={(v) => void onRename(v)}
          onCancel={closeDialogs}
        />
      )}
      {deletingAccount && (
        <PromptDialog
          title="Delete your account?"
          label="Your account, all its workspaces and their files will be deleted, and their sandboxes stopped. This cannot be undone. Type your password to confirm."
          initialValue=""
          inputType="password"
          confirmLabel="Delete account"
          danger
          busy={dialogBusy}
          error={dialogError}
          validate={(v) => (v ? null : "Your password is required.")}
          onConfirm={(v) => void onDeleteAccount(v)}
          onCancel={closeDialogs}
        />
      )}
      {deleting && (
        <ConfirmDialog
          title="Delete workspace?"
          message={
            <>
              <strong>{deleting.name}</strong> and all its files will be deleted, and its sandbox stopped. It goes to the trash, restorable from “Recently deleted”.
            </>
          }
          confirmLabel="Delete workspace"
          danger
          busy={dialogBusy}
          error={dialogError}
          onConfirm={() => void onDelete()}
          onCancel={closeDialogs}
        />
      )}
    </div>
  );
}
