import { ApiError, call } from "../api";
import { useLoad } from "./useLoad";

export type Access = "admin" | "viewer" | "member";

interface Identity {
  access: Access | null;
  can_write: boolean;
  /** why the gateway could not say (no forms are offered then) */
  problem?: string;
}

/** What the signed-in key is, from GET /admin/whoami. A gateway without that
 *  route (an older version) answers 404: the page then offers its forms and
 *  the API itself refuses what the key may not do. Any other failure offers
 *  no forms. */
async function whoami(): Promise<Identity> {
  try {
    return await call<Identity>("GET", "/admin/whoami");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { access: "admin", can_write: true };
    return { access: null, can_write: false, problem: (err as Error).message };
  }
}

export interface AccessState {
  access: Access | null;
  canWrite: boolean;
  problem: string | null;
}

/** ``canWrite`` is false until the gateway has answered, so a viewer never
 *  sees a write form flash up. */
export function useAccess(): AccessState {
  const who = useLoad(whoami, []);
  return {
    access: who.data?.access ?? null,
    canWrite: who.data?.can_write === true,
    problem: who.data?.problem ?? null,
  };
}
