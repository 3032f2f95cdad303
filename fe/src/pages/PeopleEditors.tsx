// The editors of the Users and Teams page: a user's role and limits, a team's
// limits and members. Each opens below its table with the focus on its
// heading; Escape or Cancel closes it and gives the focus back to the row's
// Edit button.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent, type ReactNode } from "react";
import { call, type Team, type User } from "../api";
import { LimitFields } from "../components/LimitFields";
import { Table } from "../components/Table";
import { limitText, parseLimits } from "../limits";

/** Runs one admin call; true when it succeeded (the page reports either way). */
export type Run = (what: () => Promise<unknown>, done: string) => Promise<boolean>;

function Editor(props: { title: string; onClose: () => void; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") props.onClose();
  };
  return (
    <section className="editor" aria-labelledby="editor-heading" onKeyDown={onKey}>
      <h3 id="editor-heading" tabIndex={-1} ref={heading}>
        {props.title}
      </h3>
      {props.children}
    </section>
  );
}

export function UserEditor(props: {
  user: User;
  fail: (message: string) => void;
  patch: (body: Record<string, unknown>) => Promise<boolean>;
  onClose: () => void;
}) {
  const { user, fail, patch, onClose } = props;
  const [role, setRole] = useState(user.role);
  const [limits, setLimits] = useState(limitText(user));

  async function save(e: FormEvent) {
    e.preventDefault();
    let body: Record<string, unknown>;
    try {
      // the admin user keeps its role: the gateway refuses the field for it
      body = { ...(user.is_admin ? {} : { role }), ...parseLimits(limits) };
    } catch (err) {
      fail((err as Error).message);
      return;
    }
    if (await patch(body)) onClose();
  }

  return (
    <Editor title={`Edit user ${user.email}`} onClose={onClose}>
      <form className="grid-form" onSubmit={save}>
        {!user.is_admin && (
          <>
            <label htmlFor="edit-user-role">Role</label>
            <select id="edit-user-role" value={role} onChange={(e) => setRole(e.target.value)}>
              <option value="member">member</option>
              <option value="viewer">viewer</option>
              <option value="admin">admin</option>
            </select>
          </>
        )}
        <LimitFields prefix="edit-user" value={limits} onChange={setLimits} />
        <span className="actions form-buttons">
          <button type="submit">Save user</button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </span>
      </form>
    </Editor>
  );
}

export function TeamEditor(props: {
  team: Team;
  users: User[];
  fail: (message: string) => void;
  patch: (body: Record<string, unknown>) => Promise<boolean>;
  run: Run;
  onClose: () => void;
}) {
  const { team, users, fail, patch, run, onClose } = props;
  const [limits, setLimits] = useState(limitText(team));
  const outside = users.filter((u) => !team.members.includes(u.id));
  const [adding, setAdding] = useState("");
  const chosen = outside.some((u) => u.id === adding) ? adding : (outside[0]?.id ?? "");
  const email = (id: string) => users.find((u) => u.id === id)?.email ?? id;
  const memberPath = (userId: string) =>
    `/admin/teams/${encodeURIComponent(team.id)}/members/${encodeURIComponent(userId)}`;

  async function save(e: FormEvent) {
    e.preventDefault();
    let body: Record<string, unknown>;
    try {
      body = { ...parseLimits(limits) };
    } catch (err) {
      fail((err as Error).message);
      return;
    }
    await patch(body);
  }

  async function add(e: FormEvent) {
    e.preventDefault();
    if (!chosen) return;
    await run(
      () => call("POST", memberPath(chosen)),
      `${email(chosen)} added to team ${team.name}.`,
    );
  }

  const remove = (userId: string) =>
    run(
      () => call("DELETE", memberPath(userId)),
      `${email(userId)} removed from team ${team.name}.`,
    );

  return (
    <Editor title={`Edit team ${team.name}`} onClose={onClose}>
      <form className="grid-form" onSubmit={save} aria-label={`Limits of team ${team.name}`}>
        <LimitFields prefix="edit-team" value={limits} onChange={setLimits} />
        <span className="actions form-buttons">
          <button type="submit">Save limits</button>
          <button type="button" onClick={onClose}>
            Close
          </button>
        </span>
      </form>
      <h4>Members</h4>
      <Table
        caption={`Members of ${team.name}`}
        rows={team.members}
        rowKey={(id) => id}
        empty="No members yet."
        columns={[
          { header: "Email", cell: (id) => email(id) },
          { header: "ID", cell: (id) => <code>{id}</code> },
          {
            header: "Actions",
            cell: (id) => (
              <button type="button" aria-label={`Remove ${email(id)} from ${team.name}`} onClick={() => remove(id)}>
                Remove
              </button>
            ),
          },
        ]}
      />
      <form className="filters member-add" onSubmit={add}>
        <label htmlFor="team-add-member">User to add</label>
        <select
          id="team-add-member"
          value={chosen}
          disabled={outside.length === 0}
          onChange={(e) => setAdding(e.target.value)}
        >
          {outside.length === 0 && <option value="">every user is a member</option>}
          {outside.map((u) => (
            <option key={u.id} value={u.id}>
              {u.email}
            </option>
          ))}
        </select>
        <button type="submit" disabled={!chosen}>
          Add member
        </button>
      </form>
    </Editor>
  );
}
