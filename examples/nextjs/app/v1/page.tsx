// The same tasks through /api/v1/tasks, authenticated with the other token
// pattern: an HS256 token minted by this app's /api/token route.
import { headers } from "next/headers";
import Link from "next/link";
import { redirect } from "next/navigation";
import { auth } from "@/lib/auth";
import { SignOut } from "../sign-out";
import { V1Board } from "./v1-board";

export default async function V1Page() {
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) redirect("/");
  return (
    <>
      <header>
        <h1>My tasks (/api/v1)</h1>
        <nav>
          <span>{session.user.email}</span>
          <Link href="/tasks">compat page</Link>
          <SignOut />
        </nav>
      </header>
      <V1Board apiUrl={process.env.TASKS_API_URL ?? "http://127.0.0.1:8000"} />
    </>
  );
}
