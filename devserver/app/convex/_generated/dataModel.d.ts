/* eslint-disable */
// The app has no tables of its own: the component's are its own.
import type { AnyDataModel } from "convex/server";

export type DataModel = AnyDataModel;
