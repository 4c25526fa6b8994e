// End to end: Better Auth sign-up in the browser, then tasks-api through the
// compatibility routes (JWT from the jwt plugin, checked against the JWKS)
// and through /api/v1 (HS256 token from /api/token). Run by e2e/run.sh.
import { expect, test, type Page } from "@playwright/test";

const SCREENSHOT = process.env.SCREENSHOT ?? "test-results/nextjs-tasks.png";

/** Fails the test on any request that leaves the machine (fonts, CDNs...). */
async function stayOffline(page: Page, offHost: string[]) {
  await page.context().route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (/^(https?|wss?):$/.test(url.protocol) && url.hostname !== "127.0.0.1") {
      offHost.push(url.href);
      return route.abort("blockedbyclient");
    }
    return route.continue();
  });
}

async function signUp(page: Page, name: string) {
  const email = `${name.toLowerCase()}-${Date.now()}@example.com`;
  await page.goto("/");
  await page.getByLabel("Name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill("correct horse battery staple");
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/tasks$/);
  await expect(page.getByText(email)).toBeVisible();
}

const card = (page: Page, title: string) => page.getByTestId("task-card").filter({ hasText: title });

async function addTask(page: Page, title: string, description?: string) {
  await expect(page.getByText("Loading…")).toHaveCount(0);
  await page.getByLabel("Title").fill(title);
  if (description !== undefined) await page.getByLabel("Description").fill(description);
  await page.getByRole("button", { name: "Add" }).click();
  await expect(card(page, title)).toBeVisible();
}

test("a user's tasks through the compat routes and /api/v1; another user sees none", async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const offHost: string[] = [];
  const pageErrors: string[] = [];
  await stayOffline(page, offHost);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // What the page sends to and gets from tasks-api.
  const calls: { method: string; path: string; status: number; body: string | null }[] = [];
  page.on("response", (r) => {
    const req = r.request();
    const url = new URL(r.url());
    if (url.pathname.startsWith("/api/") && !url.pathname.startsWith("/api/auth") && url.pathname !== "/api/token")
      calls.push({ method: req.method(), path: url.pathname, status: r.status(), body: req.postData() });
  });

  await signUp(page, "Alice");
  await expect(page.getByTestId("empty")).toBeVisible();

  // Create two tasks through the compat routes.
  await addTask(page, "Buy milk", "two litres");
  await addTask(page, "Call the plumber");

  // Complete one, then edit it: it must stay completed.
  await card(page, "Buy milk").getByRole("checkbox").click();
  await expect(card(page, "Buy milk")).toHaveAttribute("data-completed", "true");
  await card(page, "Buy milk").getByRole("button", { name: "Edit" }).click();
  const editor = page.getByTestId("task-card").filter({ has: page.getByRole("button", { name: "Save" }) });
  await editor.getByLabel("Title").fill("Buy oat milk");
  await editor.getByLabel("Description").fill("one litre");
  await editor.getByRole("button", { name: "Save" }).click();
  const edited = card(page, "Buy oat milk");
  await expect(edited).toContainText("one litre");
  await expect(edited).toHaveAttribute("data-completed", "true");
  await expect(edited.getByRole("checkbox")).toBeChecked();
  const put = calls.find((c) => c.method === "PUT");
  expect(put && Object.keys(JSON.parse(put.body ?? "{}")).sort()).toEqual(["description", "title"]);

  // Toggle the other one on and off.
  await card(page, "Call the plumber").getByRole("checkbox").click();
  await expect(card(page, "Call the plumber")).toHaveAttribute("data-completed", "true");
  await card(page, "Call the plumber").getByRole("checkbox").click();
  await expect(card(page, "Call the plumber")).toHaveAttribute("data-completed", "false");

  // Delete: the card goes at once (the page parsed the 200's JSON body).
  await card(page, "Call the plumber").getByRole("button", { name: "Delete" }).click();
  await expect(card(page, "Call the plumber")).toHaveCount(0);
  await expect(page.getByTestId("error")).toHaveCount(0);
  expect(calls.find((c) => c.method === "DELETE")?.status).toBe(200);

  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  // Reload: what the server kept is what the page showed.
  await page.reload();
  await expect(card(page, "Buy oat milk")).toHaveAttribute("data-completed", "true");
  await expect(page.getByTestId("task-card")).toHaveCount(1);

  // The /api/v1 page (HS256 token) sees the same task, and its own writes.
  await page.getByRole("link", { name: "/api/v1 page" }).click();
  await expect(page.getByRole("heading", { name: "My tasks (/api/v1)" })).toBeVisible();
  await expect(card(page, "Buy oat milk")).toHaveAttribute("data-completed", "true");
  await addTask(page, "Through v1");
  await card(page, "Through v1").getByRole("checkbox").click();
  await expect(card(page, "Through v1")).toHaveAttribute("data-completed", "true");
  await card(page, "Through v1").getByRole("button", { name: "Delete" }).click();
  await expect(card(page, "Through v1")).toHaveCount(0);
  expect(calls.filter((c) => c.method === "DELETE" && c.path.startsWith("/api/v1/")).map((c) => c.status)).toEqual([204]);
  await expect(page.getByTestId("error")).toHaveCount(0);

  // A second user, in a fresh browser context, sees nothing of Alice's.
  const other = await (await browser.newContext()).newPage();
  await stayOffline(other, offHost);
  other.on("pageerror", (e) => pageErrors.push(e.message));
  await signUp(other, "Bob");
  await expect(other.getByTestId("empty")).toBeVisible();
  await other.goto("/v1");
  await expect(other.getByTestId("empty")).toBeVisible();

  expect(calls.filter((c) => c.status >= 400)).toEqual([]);
  expect(pageErrors).toEqual([]);
  expect(offHost).toEqual([]);
});
