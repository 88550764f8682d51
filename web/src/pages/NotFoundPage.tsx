import { Link } from "../modules/router/router";

export function NotFoundPage() {
  return (
    <main className="page-center">
      <h1>Page not found</h1>
      <div>There is nothing at this address.</div>
      <Link className="btn btn-primary" to="/">
        Go to your workspaces
      </Link>
    </main>
  );
}
