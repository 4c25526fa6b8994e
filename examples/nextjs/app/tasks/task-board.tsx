"use client";
// The tasks of the signed-in user through /api/{user_id}/tasks, written the
// way hackathon front ends are: the JWT from `authClient.token()` (Better
// Auth's jwt plugin, verified by tasks-api through the JWKS), `res.json()` on
// every success, edits as `PUT {title, description}`, completion toggled with
// `PATCH …/complete`.
import { useCallback, useEffect, useState } from "react";
import { jwksToken } from "@/lib/auth-client";
import type { Task } from "@/lib/task";

export function TaskBoard({ apiUrl, userId }: { apiUrl: string; userId: string }) {
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [editing, setEditing] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  const api = useCallback(
    async <T,>(path: string, method = "GET", body?: unknown): Promise<T> => {
      const res = await fetch(`${apiUrl}/api/${encodeURIComponent(userId)}/tasks${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${await jwksToken()}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) {
        const problem = await res.json().catch(() => null);
        throw new Error(problem?.detail ?? `${method} failed: ${res.status}`);
      }
      return res.json();
    },
    [apiUrl, userId],
  );

  // Runs an action; shows its error instead of throwing.
  const run = (action: () => Promise<void>) => action().then(() => setError(null), (e: Error) => setError(e.message));
  const replace = (task: Task) => setTasks((ts) => ts?.map((t) => (t.id === task.id ? task : t)) ?? null);

  useEffect(() => {
    run(async () => setTasks(await api<Task[]>("")));
  }, [api]);

  const create = (form: FormData) =>
    run(async () => {
      const task = await api<Task>("", "POST", {
        title: String(form.get("title")),
        description: String(form.get("description")) || null,
      });
      setTasks((ts) => [task, ...(ts ?? [])]);
    });
  const toggle = (id: number) => run(async () => replace(await api<Task>(`/${id}/complete`, "PATCH")));
  const save = (id: number, form: FormData) =>
    run(async () => {
      replace(
        await api<Task>(`/${id}`, "PUT", {
          title: String(form.get("title")),
          description: String(form.get("description")) || null,
        }),
      );
      setEditing(null);
    });
  const remove = (id: number) =>
    run(async () => {
      await api<Task>(`/${id}`, "DELETE");
      setTasks((ts) => ts?.filter((t) => t.id !== id) ?? null);
    });

  return (
    <>
      <form action={create}>
        <label>
          Title
          <input type="text" name="title" required maxLength={200} />
        </label>
        <label>
          Description
          <input type="text" name="description" maxLength={1000} />
        </label>
        <button type="submit">Add</button>
      </form>
      {error && <p className="error" role="alert" data-testid="error">{error}</p>}
      {tasks === null ? (
        <p className="empty">Loading…</p>
      ) : tasks.length === 0 ? (
        <p className="empty" data-testid="empty">No tasks yet.</p>
      ) : (
        <ul className="tasks">
          {tasks.map((task) => (
            <li key={task.id} className="card" data-testid="task-card" data-completed={task.completed}>
              <input
                type="checkbox"
                checked={task.completed}
                onChange={() => toggle(task.id)}
                aria-label={`Completed: ${task.title}`}
              />
              {editing === task.id ? (
                <form action={(form) => save(task.id, form)}>
                  <label>
                    Title
                    <input type="text" name="title" defaultValue={task.title} required maxLength={200} />
                  </label>
                  <label>
                    Description
                    <input type="text" name="description" defaultValue={task.description ?? ""} maxLength={1000} />
                  </label>
                  <button type="submit">Save</button>
                  <button type="button" className="secondary" onClick={() => setEditing(null)}>
                    Cancel
                  </button>
                </form>
              ) : (
                <>
                  <div className="body">
                    <div className="title">{task.title}</div>
                    {task.description && <div className="description">{task.description}</div>}
                  </div>
                  <div className="actions">
                    <button className="secondary" onClick={() => setEditing(task.id)}>
                      Edit
                    </button>
                    <button className="danger" onClick={() => remove(task.id)}>
                      Delete
                    </button>
                  </div>
                </>
              )}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
