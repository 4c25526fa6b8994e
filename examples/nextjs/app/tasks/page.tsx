// The task page on the compatibility routes /api/{user_id}/tasks. A server
// component: it reads the session (signed out -> back to /) and where
// tasks-api is, at request time, so one build works with any TASKS_API_URL.
import { headers } from "next/headers";
import Link from "next/link";
import { redirect } from "next/navigation";
import { auth } from "@/lib/auth";
import { SignOut } from "../sign-out";
import { TaskBoard } from "./task-board";

export default async function TasksPage() {
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) redirect("/");
  const apiUrl = process.env.TASKS_API_URL ?? "http://127.0.0.1:8000";
  return (
    <>
      <header>
        <h1>My tasks</h1>
        <nav>
          <span>{session.user.email}</span>
          <Link href="/v1">/api/v1 page</Link>
          <SignOut />
        </nav>
      </header>
      <TaskBoard apiUrl={apiUrl} userId={session.user.id} />
    </>
  );
}
