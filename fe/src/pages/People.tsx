import { useState, type FormEvent } from "react";
import { call, type Listing, type Team, type User } from "../api";
import { Table } from "../components/Table";
import { ReadOnlyNote } from "../components/ReadOnlyNote";
import { useAccess } from "../components/useAccess";
import { useLoad } from "../components/useLoad";
import { int, usd } from "../format";
import { budgetText } from "../limits";
import { TeamEditor, UserEditor } from "./PeopleEditors";

type Editing = { kind: "user" | "team"; id: string } | null;

const editButtonId = (kind: string, id: string) => `edit-${kind}-${id}`;

export function People() {
  const users = useLoad(() => call<Listing<User>>("GET", "/admin/users").then((r) => r.data), []);
  const teams = useLoad(() => call<Listing<Team>>("GET", "/admin/teams").then((r) => r.data), []);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [team, setTeam] = useState("");
  const [editing, setEditing] = useState<Editing>(null);
  const who = useAccess();
  const { canWrite } = who;
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  async function run(what: () => Promise<unknown>, done: string): Promise<boolean> {
    setError(null);
    setMessage(null);
    try {
      await what();
      setMessage(done);
      return true;
    } catch (err) {
      setError((err as Error).message);
      return false;
    } finally {
      users.reload();
      teams.reload();
    }
  }

  const fail = (msg: string) => {
    setMessage(null);
    setError(msg);
  };

  function close() {
    const back = editing && document.getElementById(editButtonId(editing.kind, editing.id));
    setEditing(null);
    back?.focus();
  }

  const addUser = (e: FormEvent) => {
    e.preventDefault();
    const given = email.trim();
    run(() => call("POST", "/admin/users", { body: { email: given, role } }), `User ${given} created.`).then(
      (ok) => ok && setEmail(""),
    );
  };
  const addTeam = (e: FormEvent) => {
    e.preventDefault();
    const given = team.trim();
    run(() => call("POST", "/admin/teams", { body: { name: given } }), `Team ${given} created.`).then(
      (ok) => ok && setTeam(""),
    );
  };

  const userList = users.data ?? [];
  const teamList = teams.data ?? [];
  const emailOf = (id: string) => userList.find((u) => u.id === id)?.email ?? id;
  const teamName = (id: string) => teamList.find((t) => t.id === id)?.name ?? id;
  const editedUser = editing?.kind === "user" ? userList.find((u) => u.id === editing.id) : undefined;
  const editedTeam = editing?.kind === "team" ? teamList.find((t) => t.id === editing.id) : undefined;

  const editButton = (kind: "user" | "team", id: string, label: string) => (
    <button
      type="button"
      id={editButtonId(kind, id)}
      aria-label={`Edit ${label}`}
      aria-expanded={editing?.kind === kind && editing.id === id}
      onClick={() => setEditing({ kind, id })}
    >
      Edit
    </button>
  );

  const setStatus = (u: User, status: "active" | "disabled") =>
    run(
      () =>
        status === "disabled"
          ? call("POST", `/admin/users/${encodeURIComponent(u.id)}/disable`)
          : call("PATCH", `/admin/users/${encodeURIComponent(u.id)}`, { body: { status } }),
      `User ${u.email} ${status === "disabled" ? "disabled" : "enabled"}.`,
    );

  const denied = users.error && teams.error;
  return (
    <>
      <div role="status">{message && <p className="ok">{message}</p>}</div>
      <ReadOnlyNote {...who} />
      {(error || denied) && (
        <p role="alert" className="error">
          {error || users.error}
        </p>
      )}
      <section aria-labelledby="users">
        <h2 id="users">Users</h2>
        {canWrite && (
          <form className="filters" onSubmit={addUser}>
            <label htmlFor="user-email">Email</label>
            <input id="user-email" type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
            <label htmlFor="user-role">Role</label>
            <select id="user-role" value={role} onChange={(e) => setRole(e.target.value)}>
              <option value="member">member</option>
              <option value="viewer">viewer</option>
              <option value="admin">admin</option>
            </select>
            <button type="submit">Create user</button>
          </form>
        )}
        <Table
          caption="Users"
          rows={userList}
          rowKey={(u) => u.id}
          columns={[
            { header: "Email", cell: (u) => u.email },
            { header: "ID", cell: (u) => <code>{u.id}</code> },
            { header: "Role", cell: (u) => u.role },
            { header: "Status", cell: (u) => u.status },
            { header: "Teams", cell: (u) => u.teams.map(teamName).join(", ") || "—" },
            { header: "RPM", cell: (u) => int(u.rpm), numeric: true },
            { header: "TPM", cell: (u) => int(u.tpm), numeric: true },
            { header: "Budget", cell: (u) => budgetText(u, usd), numeric: true },
            {
              header: "Actions",
              cell: (u) => canWrite && (
                <span className="actions">
                  {editButton("user", u.id, u.email)}
                  {!u.is_admin && u.status === "active" && (
                    <button type="button" aria-label={`Disable ${u.email}`} onClick={() => setStatus(u, "disabled")}>
                      Disable
                    </button>
                  )}
                  {!u.is_admin && u.status === "disabled" && (
                    <button type="button" aria-label={`Enable ${u.email}`} onClick={() => setStatus(u, "active")}>
                      Enable
                    </button>
                  )}
                </span>
              ),
            },
          ]}
        />
        {canWrite && editedUser && (
          <UserEditor
            key={editedUser.id}
            user={editedUser}
            fail={fail}
            onClose={close}
            patch={(body) =>
              run(
                () => call("PATCH", `/admin/users/${encodeURIComponent(editedUser.id)}`, { body }),
                `User ${editedUser.email} saved.`,
              )
            }
          />
        )}
      </section>
      <section aria-labelledby="teams">
        <h2 id="teams">Teams</h2>
        {canWrite && (
          <form className="filters" onSubmit={addTeam}>
            <label htmlFor="team-name">Team name</label>
            <input id="team-name" required value={team} onChange={(e) => setTeam(e.target.value)} />
            <button type="submit">Create team</button>
          </form>
        )}
        <Table
          caption="Teams"
          rows={teamList}
          rowKey={(t) => t.id}
          columns={[
            { header: "Name", cell: (t) => t.name },
            { header: "ID", cell: (t) => <code>{t.id}</code> },
            { header: "Members", cell: (t) => t.members.map(emailOf).join(", ") || "—" },
            { header: "RPM", cell: (t) => int(t.rpm), numeric: true },
            { header: "TPM", cell: (t) => int(t.tpm), numeric: true },
            { header: "Budget", cell: (t) => budgetText(t, usd), numeric: true },
            {
              header: "Actions",
              cell: (t) => canWrite && <span className="actions">{editButton("team", t.id, `team ${t.name}`)}</span>,
            },
          ]}
        />
        {canWrite && editedTeam && (
          <TeamEditor
            key={editedTeam.id}
            team={editedTeam}
            users={userList}
            fail={fail}
            run={run}
            onClose={close}
            patch={(body) =>
              run(
                () => call("PATCH", `/admin/teams/${encodeURIComponent(editedTeam.id)}`, { body }),
                `Limits of team ${editedTeam.name} saved.`,
              )
            }
          />
        )}
      </section>
    </>
  );
}
