import { useState, type FormEvent } from "react";
import { call, type Listing, type Team, type User } from "../api";
import { Table } from "../components/Table";
import { useLoad } from "../components/useLoad";
import { int, usd } from "../format";

export function People() {
  const users = useLoad(() => call<Listing<User>>("GET", "/admin/users").then((r) => r.data), []);
  const teams = useLoad(() => call<Listing<Team>>("GET", "/admin/teams").then((r) => r.data), []);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [team, setTeam] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  async function run(what: () => Promise<unknown>, done: string) {
    setError(null);
    try {
      await what();
      setMessage(done);
      users.reload();
      teams.reload();
    } catch (err) {
      setError((err as Error).message);
    }
  }

  const addUser = (e: FormEvent) => {
    e.preventDefault();
    run(() => call("POST", "/admin/users", { body: { email: email.trim(), role } }), `User ${email} created.`).then(
      () => setEmail(""),
    );
  };
  const addTeam = (e: FormEvent) => {
    e.preventDefault();
    run(() => call("POST", "/admin/teams", { body: { name: team.trim() } }), `Team ${team} created.`).then(() =>
      setTeam(""),
    );
  };

  const denied = users.error && teams.error;
  return (
    <>
      <div role="status">{message && <p className="ok">{message}</p>}</div>
      {(error || denied) && (
        <p role="alert" className="error">
          {error || users.error}
        </p>
      )}
      <section aria-labelledby="users">
        <h2 id="users">Users</h2>
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
        <Table
          caption="Users"
          rows={users.data ?? []}
          rowKey={(u) => u.id}
          columns={[
            { header: "Email", cell: (u) => u.email },
            { header: "ID", cell: (u) => <code>{u.id}</code> },
            { header: "Role", cell: (u) => u.role },
            { header: "Status", cell: (u) => u.status },
            { header: "Teams", cell: (u) => u.teams.join(", ") || "—" },
            { header: "RPM", cell: (u) => int(u.rpm), numeric: true },
            { header: "Budget", cell: (u) => usd(u.budget_usd), numeric: true },
            {
              header: "Actions",
              cell: (u) =>
                !u.is_admin && u.status === "active" ? (
                  <button
                    type="button"
                    aria-label={`Disable ${u.email}`}
                    onClick={() => run(() => call("POST", `/admin/users/${u.id}/disable`), `User ${u.email} disabled.`)}
                  >
                    Disable
                  </button>
                ) : null,
            },
          ]}
        />
      </section>
      <section aria-labelledby="teams">
        <h2 id="teams">Teams</h2>
        <form className="filters" onSubmit={addTeam}>
          <label htmlFor="team-name">Team name</label>
          <input id="team-name" required value={team} onChange={(e) => setTeam(e.target.value)} />
          <button type="submit">Create team</button>
        </form>
        <Table
          caption="Teams"
          rows={teams.data ?? []}
          rowKey={(t) => t.id}
          columns={[
            { header: "Name", cell: (t) => t.name },
            { header: "ID", cell: (t) => <code>{t.id}</code> },
            { header: "Members", cell: (t) => int(t.members.length), numeric: true },
            { header: "RPM", cell: (t) => int(t.rpm), numeric: true },
            { header: "Budget", cell: (t) => usd(t.budget_usd), numeric: true },
          ]}
        />
      </section>
    </>
  );
}
