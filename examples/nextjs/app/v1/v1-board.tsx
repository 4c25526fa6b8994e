"use client";
// /api/v1/tasks: the list is `{items, next_cursor}`, the user comes from the
// token alone, DELETE answers 204 with no body.
import { useCallback, useEffect, useState } from "react";
import { sharedSecretToken } from "@/lib/auth-client";
import type { Task } from "@/lib/task";

export function V1Board({ apiUrl }: { apiUrl: string }) {
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const api = useCallback(
    async (path: string, method = "GET", body?: unknown): Promise<Response> => {
      const res = await fetch(`${apiUrl}/api/v1/tasks${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${await sharedSecretToken()}`,
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) {
        const problem = await res.json().catch(() => null);
        throw new Error(problem?.detail ?? `${method} failed: ${res.status}`);
      }
      return res;
    },
    [apiUrl],
  );
  const run = (action: () => Promise<void>) => action().then(() => setError(null), (e: Error) => setError(e.message));

  useEffect(() => {
    run(async () => setTasks(((await (await api("?limit=100")).json()) as { items: Task[] }).items));
  }, [api]);

  const create = (form: FormData) =>
    run(async () => {
      const task = (await (await api("", "POST", { title: String(form.get("title")) })).json()) as Task;
      setTasks((ts) => [task, ...(ts ?? [])]);
    });
  const toggle = (id: number) =>
    run(async () => {
      const task = (await (await api(`/${id}/complete`, "PATCH")).json()) as Task;
      setTasks((ts) => ts?.map((t) => (t.id === id ? task : t)) ?? null);
    });
  const remove = (id: number) =>
    run(async () => {
      await api(`/${id}`, "DELETE"); // 204: no body to parse
      setTasks((ts) => ts?.filter((t) => t.id !== id) ?? null);
    });

  return (
    <>
      <form action={create}>
        <label>
          Title
          <input type="text" name="title" required maxLength={200} />
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
              <div className="body">
                <div className="title">{task.title}</div>
              </div>
              <div className="actions">
                <button className="danger" onClick={() => remove(task.id)}>
                  Delete
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
