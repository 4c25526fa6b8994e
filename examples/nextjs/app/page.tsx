"use client";
// Sign up or sign in with email + password (Better Auth), then go to /tasks.
import { useRouter } from "next/navigation";
import { useState } from "react";
import { authClient } from "@/lib/auth-client";

export default function SignInPage() {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);

  async function submit(form: FormData, mode: "up" | "in") {
    const email = String(form.get("email"));
    const password = String(form.get("password"));
    const { error } =
      mode === "up"
        ? await authClient.signUp.email({ email, password, name: String(form.get("name") || email) })
        : await authClient.signIn.email({ email, password });
    if (error) return setError(error.message ?? "Could not sign in");
    router.push("/tasks");
  }

  return (
    <>
      <header>
        <h1>Tasks</h1>
      </header>
      <form className="stack" action={(form) => submit(form, "up")}>
        <label>
          Name
          <input type="text" name="name" autoComplete="name" />
        </label>
        <label>
          Email
          <input type="email" name="email" required autoComplete="email" />
        </label>
        <label>
          Password
          <input type="password" name="password" required minLength={8} autoComplete="current-password" />
        </label>
        <button type="submit">Sign up</button>
        <button type="submit" className="secondary" formAction={(form) => submit(form, "in")}>
          Sign in
        </button>
      </form>
      {error && <p className="error" role="alert" data-testid="error">{error}</p>}
    </>
  );
}
