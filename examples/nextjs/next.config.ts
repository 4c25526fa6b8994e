import type { NextConfig } from "next";

const nextConfig: NextConfig = {
  // better-sqlite3 is a native module: load it from node_modules at run time
  // instead of bundling it (Next.js lists it by default; named here so that
  // the choice is visible).
  serverExternalPackages: ["better-sqlite3"],
};

export default nextConfig;
